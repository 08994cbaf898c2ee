"""One module per paper, installed as `segcli.recipes`; each defines RECIPES (see segcli.recipe).

Import these as `segcli.recipes.<module>`, never as `recipes.<module>`.
"""
