"""Looking at traffic: summary tables, edge tables, graphs and plots."""
