"""dancenow.engines"""
