"""Flow chunks -> edges: the reduction every command streams through."""
