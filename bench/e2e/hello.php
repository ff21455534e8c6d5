<?php
// bench:e2e row "php-fpm": the same hello world, run by php-fpm (pm static, one child) behind
// nginx fastcgi_pass (a connection per request). Content-Length is set as tsgi's gateway sets it
// for the other rows.
header('Content-Type: text/plain');
header('Content-Length: 14');
echo "Hello, world!\n";
