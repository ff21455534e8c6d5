<?php
// answers at once without reading the request body (php://input is never opened), and ends
// the request there (FastCGI END_REQUEST) while the body is still arriving
header('Status: 413 Payload Too Large');
header('Content-Type: text/plain');
header('X-Early: yes');
echo "too large: ", $_SERVER['CONTENT_LENGTH'] ?? '-', "\n";
fastcgi_finish_request();
