<?php
header('Content-Type: application/json');
$keys = ['SCRIPT_FILENAME', 'SCRIPT_NAME', 'PATH_INFO', 'PATH_TRANSLATED', 'DOCUMENT_ROOT',
  'DOCUMENT_URI', 'REQUEST_URI', 'QUERY_STRING', 'REQUEST_METHOD', 'HTTP_PROXY', 'HTTP_X_TEST',
  'CONTENT_TYPE', 'CONTENT_LENGTH'];
$out = [];
foreach ($keys as $k) $out[$k] = $_SERVER[$k] ?? null;
$out['pid'] = getmypid();
echo json_encode($out);
