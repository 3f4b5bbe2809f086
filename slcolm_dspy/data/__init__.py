"""Reading, writing, fetching and describing corpora."""
