"""dancenow.demo"""
