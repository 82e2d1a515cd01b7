"""Untrusted bytes -> pages: magic-byte sniffing, limits, image decoding, PDF inspection and rasterising.

Imports only the standard library, its parsers (Pillow, OpenCV, PDFium, pypdf) and ``errors``.
``sniff``, ``limits`` and ``pages`` are pure and safe outside a jail; ``images`` and ``documents``
parse untrusted bytes and run inside a jailed converter or OCR worker.
"""
