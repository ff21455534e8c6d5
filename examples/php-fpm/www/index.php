<?php
header('Content-Type: text/plain');
echo "Hello from PHP ", PHP_MAJOR_VERSION, "! ", $_SERVER['REQUEST_METHOD'], ' ', $_SERVER['REQUEST_URI'], "\n";
