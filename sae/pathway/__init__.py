"""Pathway tracking ("Exp1"): per-decision SAE activations at every layer, stored as sparse
shards, and the bankrupt-vs-stopped comparison layer by layer and round by round."""
