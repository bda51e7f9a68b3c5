"""dancenow.realtime"""
