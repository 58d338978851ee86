# Minimal stubs for tensorboardX.proto.summary_pb2: only what Lerax calls.

class Summary:
    """A TensorBoard ``Summary`` protocol buffer (opaque here)."""
