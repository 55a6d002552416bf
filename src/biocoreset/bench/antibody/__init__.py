"""Antibody data for the antibody benchmarks: IMGT germline genes (via ``anarci``).

The packages that ship the data are optional (``pip install 'biocoreset[antibody]'``); nothing here
imports them until a function is called.
"""
