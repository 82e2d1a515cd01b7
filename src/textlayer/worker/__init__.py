"""The OCR worker: the engine (numpy + one onnxruntime module), its jailed role, and the gRPC server and client.

The engine (engine, predictor, detection, recognition, words, layout, orientation, manifest)
receives decoded arrays and knows nothing of jobs, documents or PDFs.
"""
