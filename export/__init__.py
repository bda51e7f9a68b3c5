"""dancenow.export"""
