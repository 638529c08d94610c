"""Measures of translation quality on toy mixtures and on image features."""
