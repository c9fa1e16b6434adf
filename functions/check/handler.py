def handler(event, context): raise RuntimeError("placeholder")
