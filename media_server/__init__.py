"""The media server: the container that holds Twilio Media Streams and Plivo audio streams."""
