"""The only package that imports streamlit: cached accessors and widgets shared by pages."""
