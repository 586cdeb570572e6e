"""Registry layer: a model version's footprint, budgets, policy and the carbon gate."""
