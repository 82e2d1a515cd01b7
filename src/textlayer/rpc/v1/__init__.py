"""Generated from protos/textlayer/rpc/v1/ocr.proto by grpc_tools.protoc (never edited)."""
