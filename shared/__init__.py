"""The library woosync's services share: settings, database and broker access, message models,
the WooCommerce client, the mapping rules and metrics. Never imports a service."""
