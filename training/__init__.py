"""dancenow.training"""
