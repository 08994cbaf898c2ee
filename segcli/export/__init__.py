"""Exported forms of a model (ONNX, TorchScript) and their parity with PyTorch."""
