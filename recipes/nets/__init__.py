"""The networks of the recipes (segcli.recipes declares them, torch-free): one module per paper,
imported when a recipe builds its model."""
