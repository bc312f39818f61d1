"""One module per model family; each is imported only when a model of that family is loaded."""
