"""The webhooks service: signed WooCommerce deliveries in, one-customer syncs out (docs/contract.md section 10)."""
