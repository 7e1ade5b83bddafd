"""Category tables (names, colours, ids) of the builtin datasets."""
