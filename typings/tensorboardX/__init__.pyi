# Minimal stubs for tensorboardX (it ships no py.typed): only what Lerax calls.
from .writer import FileWriter as FileWriter
from .writer import SummaryWriter as SummaryWriter
