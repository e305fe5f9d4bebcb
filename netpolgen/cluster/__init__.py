"""The cluster as the inventory describes it: pods, Services, nodes, namespaces, over time."""
