"""SynthSmith: grow verified competitive-programming tasks from a few seeds."""

__version__ = "0.1.0"
