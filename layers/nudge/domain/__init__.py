"""The domain core: pure Python, no AWS imports. Tested in milliseconds."""
