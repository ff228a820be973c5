"""API resources, one module per area: image_to_video, ai_models, account, webhooks."""
