<?php
// the request body's length and sha256, read from php://input
$in = file_get_contents('php://input');
header('Content-Type: text/plain');
echo strlen($in), ' ', hash('sha256', $in), ' ', $_SERVER['CONTENT_LENGTH'] ?? '-', "\n";
