"""The processes of ``textlayer up``: one supervisor with one restart loop, the embedded Redis, the stack."""
