"""Corpora, demo corpus, feature cache, sampler, collate and the DataModule."""
