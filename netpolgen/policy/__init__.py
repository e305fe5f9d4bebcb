"""The policy model, its synthesis from edges, and its rendering as YAML."""
