"""Flask blueprints: Twilio webhooks, health, clinic API and dashboard."""
