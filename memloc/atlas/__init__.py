"""The memorization atlas: one row per training example of the primary setting with everything
memloc measured about it (table), and a self-contained page to sort, filter and click (page)."""
