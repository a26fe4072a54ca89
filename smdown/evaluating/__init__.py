"""The evaluating stage: metrics, the scores of a run against truth, stations and the coarse input, and the figures."""
