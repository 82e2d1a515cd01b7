"""Generated gRPC code (never edited): see protos/textlayer/rpc/v1/ocr.proto."""
