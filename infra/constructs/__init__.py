"""One construct per capability; each takes keyword-only props and exposes its resources
as attributes. The stack (infra/stack.py) wires them together."""
