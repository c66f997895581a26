"""woosync's services. Each sub-package is one service; services never import each other."""
