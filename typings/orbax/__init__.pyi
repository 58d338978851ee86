# Minimal stubs for orbax-checkpoint (it ships no py.typed): only what
# lerax.checkpoint calls. orbax itself is a namespace package.
