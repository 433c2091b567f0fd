/* kinfer_empty.c — placeholder translation unit for a module with no sources yet. */
typedef int kinfer_empty_unit;
