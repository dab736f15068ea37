"""Placeholder replaced below."""
import sys
def main(argv=None):
    print("0.1.0"); return 0
