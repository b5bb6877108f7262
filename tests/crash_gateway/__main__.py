import os
import sys

from paymux.cli import main
from tests.crash_gateway import attach_crash

if fault := os.environ.get("PAYMUX_FAULT_INJECTION"):
    attach_crash(fault)
main(["serve", *sys.argv[1:]])
