"""The real-time layer over `hivecast.ws`: chat rooms, danmaku, presence, moderation, pushed events."""
