"""Tests of finward.limits: algorithms, the memory and Redis stores."""
