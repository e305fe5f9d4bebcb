"""Who the endpoints are: workloads, their owners and selectors, groups of outside addresses."""
