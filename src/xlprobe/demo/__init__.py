"""The embedded demo only: synthetic UD-style languages (`synthetic`) and tiny models pre-trained on
them (`pretrain`). Nothing of the paper's experiment imports this package."""
