"""The registry: load and unload models, and the memory each holds (siblings on one base share it)."""
import streamlit as st

from medvqa import load_model, loaded_models, unload_model
from medvqa.datatypes import MedVQAError
from medvqa.ui import escaped
from medvqa.ui.registry_table import last_latency_s, registry_frame, resident_mib, served_health

st.title("Models")
frame, problems = registry_frame()
for message in problems:
    st.warning(f"Skipped a checkpoint: {escaped(message)}")
if frame.empty:
    st.info("No models registered yet.")
    st.stop()
resident = resident_mib()
st.caption(f"{len(loaded_models())} loaded · {sum(resident.values()) if resident else 0:.1f} MiB of weights resident "
           "(shared bases counted once per model below)")
resident_bases = {r["base"] for r in frame.to_dict("records") if r["model"] in resident}
health = served_health(tuple((r["model"], r["base"], r["served model"]) for r in frame.to_dict("records")
                             if r["served model"]))
for row in frame.to_dict("records"):
    name = row["model"]
    if row["served model"]:  # an engine holds its weights: its health and latency, nothing to load here
        with st.container(border=True):
            info, status = st.columns([4, 2])
            problem = health[name]
            info.markdown(f"**{escaped(name)}** · served · endpoint {escaped(row['base'])} · model "
                          f"{escaped(row['served model'])}  \n{escaped(row['description'])}")
            latency = last_latency_s(name)
            status.metric("Engine", "up" if problem is None else "down",
                          f"last answer {latency * 1000:.0f} ms" if latency is not None else None,
                          delta_color="off")
            if problem is not None:
                status.caption(escaped(problem))
        continue
    with st.container(border=True):
        info, memory, action = st.columns([4, 1, 1])
        info.markdown(f"**{escaped(name)}** · {escaped(row['family'])} · base {escaped(row['base'])}"
                      + (" · LoRA adapter" if row["adapter"] else "")
                      + (f" · {escaped(row['quantization'])}" if row["quantization"] != "none" else "")
                      + f"  \n{escaped(row['description'])}")
        memory.metric("Resident MiB" if name in resident else "Est. MiB",
                      f"{resident[name]:.1f}" if name in resident else (row["est. MiB"] or "?"))
        if name in resident:
            if action.button("Unload", key=f"models-unload-{name}"):
                unload_model(name)
                st.rerun()
        elif action.button("Load", key=f"models-load-{name}",
                           # a sibling of a resident base only attaches its adapter: nothing to call attention to
                           type="secondary" if row["base"] in resident_bases else "primary",
                           help="shares a base already in memory" if row["base"] in resident_bases else None):
            try:
                with st.spinner(f"Loading {name}..."):
                    load_model(name)
            except MedVQAError as exc:
                st.error(escaped(exc))
            else:
                st.rerun()
