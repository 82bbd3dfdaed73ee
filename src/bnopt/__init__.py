"""bnopt: a reproduction suite for Santurkar et al., "How Does Batch Normalization Help Optimization?"."""

__version__ = "0.1.0"
