;; A complete plugin written by hand against sdk/ABI.md: `store` saves its input under table "notes", key "last", reads it back through the result buffer and returns it.
(module
  (import "tenantry:v1" "kv_put" (func $kv_put (param i32 i32 i32 i32 i32 i32) (result i32)))
  (import "tenantry:v1" "kv_get" (func $kv_get (param i32 i32 i32 i32) (result i64)))
  (import "tenantry:v1" "result_read" (func $result_read (param i32 i32) (result i32)))
  (import "tenantry:v1" "output" (func $output (param i32 i32) (result i32)))

  (memory (export "memory") 1)
  ;; Constants live below 1024; the allocator hands out memory from 1024 up.
  (data (i32.const 16) "notes")
  (data (i32.const 32) "last")
  (data (i32.const 48) "kv_put failed")
  (global $next (mut i32) (i32.const 1024))

  (func (export "tenantry_abi_version") (result i32)
    (i32.const 1))

  ;; Bump allocator: never frees (the instance's memory is the guest's to manage); grows
  ;; memory when needed and returns 0 when it cannot.
  (func $alloc (export "tenantry_alloc") (param $len i32) (result i32)
    (local $ptr i32) (local $end i64) (local $pages i32)
    (local.set $ptr (global.get $next))
    (local.set $end (i64.add (i64.extend_i32_u (local.get $ptr)) (i64.extend_i32_u (local.get $len))))
    (local.set $pages (i32.wrap_i64 (i64.shr_u (i64.add (local.get $end) (i64.const 65535)) (i64.const 16))))
    (if (i32.gt_u (local.get $pages) (memory.size))
      (then
        (if (i32.eq (memory.grow (i32.sub (local.get $pages) (memory.size))) (i32.const -1))
          (then (return (i32.const 0))))))
    (global.set $next (i32.wrap_i64 (local.get $end)))
    (local.get $ptr))

  ;; store(input_ptr, input_len) -> 0 (output: the stored value) or 1 (output: a message)
  (func (export "store") (param $input i32) (param $input_len i32) (result i32)
    (local $len i64) (local $buf i32)
    (if (i32.lt_s
          (call $kv_put (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 4)
                        (local.get $input) (local.get $input_len))
          (i32.const 0))
      (then
        (drop (call $output (i32.const 48) (i32.const 13)))
        (return (i32.const 1))))
    ;; kv_get returns the value's length and leaves the value in the result buffer.
    (local.set $len (call $kv_get (i32.const 16) (i32.const 5) (i32.const 32) (i32.const 4)))
    (if (i64.lt_s (local.get $len) (i64.const 0))
      (then (return (i32.const 1))))
    (local.set $buf (call $alloc (i32.wrap_i64 (local.get $len))))
    (if (i32.eqz (local.get $buf))
      (then (return (i32.const 1))))
    (drop (call $result_read (local.get $buf) (i32.wrap_i64 (local.get $len))))
    (drop (call $output (local.get $buf) (i32.wrap_i64 (local.get $len))))
    (i32.const 0))
)
