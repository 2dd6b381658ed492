import sys


def main() -> int:
    print("hello from greeter", *sys.argv[1:])
    return 0
