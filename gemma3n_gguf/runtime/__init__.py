"""Patched llama.cpp runtimes built from the pinned llama-cpp-python sdist (see build.py)."""
